package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswd(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"passwd", "--cost", "4"}, strings.NewReader("s3cret pass\nignored\n"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")); err != nil {
		t.Fatalf("hash %q does not match the password: %v", h, err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != 4 {
		t.Fatalf("cost %d, want 4", c)
	}
	// Two runs give different salts.
	var out2 bytes.Buffer
	run([]string{"passwd", "--cost", "4"}, strings.NewReader("s3cret pass"), &out2, &errb)
	if out2.String() == out.String() || bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out2.String())), []byte("s3cret pass")) != nil {
		t.Fatalf("second hash %q", out2.String())
	}
	for _, tc := range []struct {
		args []string
		in   string
		code int
		want string
	}{
		{[]string{"passwd"}, "\n", 1, "empty password"},
		{[]string{"passwd"}, "", 1, "empty password"},
		{[]string{"passwd", "--cost", "99"}, "x\n", 1, "--cost 99: want 4-31"},
		{[]string{"passwd", "pw"}, "x\n", 2, "unexpected argument"},
		{[]string{"passwd"}, strings.Repeat("x", 80) + "\n", 1, "password length exceeds 72 bytes"},
	} {
		var o, e bytes.Buffer
		if code := run(tc.args, strings.NewReader(tc.in), &o, &e); code != tc.code || !strings.Contains(e.String(), tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, e.String(), tc.code, tc.want)
		}
	}
}
