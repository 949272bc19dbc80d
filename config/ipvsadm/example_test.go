package ipvsadm_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/ulvs/ulvs/config/ipvsadm"
)

func Example() {
	p := &ipvsadm.Parser{}
	table, err := p.Restore(nil, strings.NewReader(`
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.1.2 -m -w 2
-a -t 10.0.0.1:80 -r 10.0.1.1 -m
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	(&ipvsadm.Printer{}).Save(os.Stdout, ipvsadm.FromConfig(table), ipvsadm.FmtNumeric)

	_, err = ipvsadm.Parse([]string{"ipvsadm", "-a", "-t", "10.0.0.1:80", "-r", "10.0.1.3", "-w", "70000"})
	fmt.Println(err, ipvsadm.ExitCode(err))
	// Output:
	// -A -t 10.0.0.1:80 -s rr
	// -a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1
	// -a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 2
	// illegal weight specified 2
}
