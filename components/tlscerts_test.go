package components

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBrokerCAIsDeterministicAndVerifies: the same seed renders the same PEM (so a preview shows no
// change), another seed other keys, and a node's certificate verifies against the CA for its address
// and serves a real TLS handshake.
func TestBrokerCAIsDeterministicAndVerifies(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a, err := NewBrokerCA(seed, "test")
	require.NoError(t, err)
	b, err := NewBrokerCA(seed, "test")
	require.NoError(t, err)
	assert.Equal(t, a.CertPEM(), b.CertPEM())
	certA, keyA, err := a.Issue("redis-0", []string{"10.0.0.11", "127.0.0.1", "redis-0"})
	require.NoError(t, err)
	certB, keyB, err := b.Issue("redis-0", []string{"10.0.0.11", "127.0.0.1", "redis-0"})
	require.NoError(t, err)
	assert.Equal(t, certA, certB)
	assert.Equal(t, keyA, keyB)
	other, err := NewBrokerCA(bytes.Repeat([]byte{8}, 32), "test")
	require.NoError(t, err)
	assert.NotEqual(t, a.CertPEM(), other.CertPEM())
	_, err = NewBrokerCA(seed[:16], "test")
	assert.Error(t, err)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(a.CertPEM())))
	block, _ := pem.Decode([]byte(certA))
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.11"})
	assert.NoError(t, err, "valid for its host address")
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.12"})
	assert.Error(t, err, "not for another host's")

	pair, err := tls.X509KeyPair([]byte(certA), []byte(keyA))
	require.NoError(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	require.NoError(t, err, "a client that trusts the CA completes the handshake")
	conn.Close()
	_, err = tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: "127.0.0.1"})
	assert.Error(t, err, "a client that does not trust the CA refuses it")
}
