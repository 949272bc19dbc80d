package lab_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/ulvs/ulvs/lab"
)

// A DR lab with three real servers: fetch rs1's page by its own address
// from the client, then run a command in the director.
func ExampleUp() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Spec{Mode: lab.DR, Servers: 3, IPv6: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Down()

	rs1, _ := l.Plan.Host("rs1")
	resp, err := l.HTTPClient("client1", 2*time.Second).Get(fmt.Sprintf("http://%s/", rs1.Addr4()))
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s", body) // rs1

	out, err := l.Exec(ctx, "dir1", "ip", "-br", "addr").CombinedOutput()
	fmt.Println(string(out), err)
}
