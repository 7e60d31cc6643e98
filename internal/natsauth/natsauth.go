// Package natsauth turns NATS client credentials and TLS files into nats.go connection options: the one place
// both the publisher and `sestream sub` build them.
package natsauth

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// Auth are a NATS client's credentials and TLS files; empty fields are not used.
type Auth struct {
	User, Password string
	Token          string
	CredsFile      string // a .creds file (JWT and nkey seed)
	NKeySeedFile   string
	CAFile         string // PEM roots to verify the server with
	CertFile       string // client certificate, PEM; with KeyFile
	KeyFile        string
}

// Options returns the nats.go options for a. A bad nkey seed file is an error naming the file.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.User != "" || a.Password != "" {
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed file %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	return opts, nil
}
