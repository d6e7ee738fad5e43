package components

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity of the broker's certificates. They are derived from a seed kept (encrypted) in state, so
// they must not depend on the time of a run or every preview would show new ones: fixed dates, renewed
// by a passwordRotation (a new seed) well before 2036.
var (
	certNotBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
)

// BrokerCA is the TLS authority of a multi-host broker: an Ed25519 CA whose key, and every node's
// key and certificate, derive from one 32-byte seed. Ed25519 signatures are deterministic, so the
// same seed renders the same PEM text on every run.
type BrokerCA struct {
	seed []byte
	key  ed25519.PrivateKey
	cert *x509.Certificate
	der  []byte
}

// NewBrokerCA derives the CA from seed (at least 32 bytes); name goes into its subject.
func NewBrokerCA(seed []byte, name string) (*BrokerCA, error) {
	if len(seed) < 32 {
		return nil, fmt.Errorf("TLS seed: %d bytes, at least 32 needed", len(seed))
	}
	ca := &BrokerCA{seed: seed, key: derivedKey(seed, "ca")}
	tmpl := &x509.Certificate{
		SerialNumber:          serial("ca"),
		Subject:               pkix.Name{CommonName: name + " broker CA"},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, ca.key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	ca.der = der
	return ca, nil
}

// CertPEM is the CA certificate, which nodes and clients trust.
func (ca *BrokerCA) CertPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}))
}

// Issue returns the certificate and key (PEM) of the node named name, valid for the addresses and
// names given, for TLS servers and clients (a replica is its primary's client).
func (ca *BrokerCA) Issue(name string, addrs []string) (certPEM, keyPEM string, err error) {
	key := derivedKey(ca.seed, "node:"+name)
	tmpl := &x509.Certificate{
		SerialNumber: serial("node:" + name),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, a)
		}
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return "", "", fmt.Errorf("TLS certificate of %s: %w", name, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})), nil
}

// derivedKey is the Ed25519 key of label under seed.
func derivedKey(seed []byte, label string) ed25519.PrivateKey {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(label))
	return ed25519.NewKeyFromSeed(h.Sum(nil))
}

// serial is a positive 127-bit serial number from label.
func serial(label string) *big.Int {
	sum := sha256.Sum256([]byte("serial:" + label))
	sum[0] &= 0x7f
	return new(big.Int).SetBytes(sum[:16])
}
