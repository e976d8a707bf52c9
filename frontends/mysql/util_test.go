package mysql_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

type bufioR = bufio.Reader

func newBufioR(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
