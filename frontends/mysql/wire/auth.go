package wire

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// NewScramble returns 20 random bytes as MySQL generates them: ASCII,
// never NUL or '$'.
func NewScramble() []byte {
	b := make([]byte, ScrambleLength)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] &= 0x7f
		if b[i] == 0 || b[i] == '$' {
			b[i]++
		}
	}
	return b
}

// NativeResponse is mysql_native_password's answer to a scramble:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for an
// empty password.
func NativeResponse(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble[:min(len(scramble), ScrambleLength)])
	h.Write(h2[:])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// SHA2Response is caching_sha2_password's fast-path answer:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func SHA2Response(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	h := sha256.New()
	h.Write(h2[:])
	h.Write(scramble[:min(len(scramble), ScrambleLength)])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// Equal compares an authentication response in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// caching_sha2_password's AuthMoreData status bytes.
const (
	SHA2RequestPublicKey = 0x02
	SHA2FastAuthSuccess  = 0x03
	SHA2FullAuth         = 0x04
)

// XORScramble XORs password+NUL with the scramble repeated, as the
// caching_sha2_password and sha256_password plugins do before RSA
// encryption.
func XORScramble(password []byte, scramble []byte) []byte {
	out := make([]byte, len(password)+1)
	copy(out, password)
	for i := range out {
		out[i] ^= scramble[i%len(scramble)]
	}
	return out
}

// EncryptPassword encrypts a password for caching_sha2_password's full
// authentication without TLS, with the server's PEM public key.
func EncryptPassword(password string, scramble []byte, pemKey []byte) ([]byte, error) {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return nil, errors.New("mysql: server public key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("mysql: server public key is not RSA")
	}
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaPub, XORScramble([]byte(password), scramble), nil)
}

// DecryptPassword undoes EncryptPassword with the server's private key.
func DecryptPassword(ciphertext, scramble []byte, key *rsa.PrivateKey) (string, error) {
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, ciphertext, nil)
	if err != nil {
		return "", err
	}
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	if len(plain) == 0 || plain[len(plain)-1] != 0 {
		return "", errors.New("mysql: decrypted password is not NUL-terminated")
	}
	return string(plain[:len(plain)-1]), nil
}
