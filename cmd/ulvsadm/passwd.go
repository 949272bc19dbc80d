package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// passwd is `ulvsadm passwd [--cost N]`: it reads a password (the first
// line of stdin) and prints its bcrypt hash, for a [[web.user]]
// password_hash. Example: `read -rs p; echo "$p" | ulvsadm passwd`.
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ulvsadm passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (`4-31`; each step doubles the work of a login)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ulvsadm passwd [--cost N] < password\n"+
			"Reads a password from the first line of standard input and prints its bcrypt hash\n"+
			"for password_hash in a [[web.user]] table.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ulvsadm passwd: unexpected argument %q (the password is read from standard input)\n", fs.Arg(0))
		return 2
	}
	hash, err := hashPassword(stdin, *cost)
	if err != nil {
		fmt.Fprintf(stderr, "ulvsadm passwd: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}

// ErrEmptyPassword is an empty first line of input.
var ErrEmptyPassword = errors.New("empty password")

func hashPassword(r io.Reader, cost int) (string, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", fmt.Errorf("--cost %d: want %d-%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", ErrEmptyPassword
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", err // bcrypt.ErrPasswordTooLong above 72 bytes
	}
	return string(h), nil
}
