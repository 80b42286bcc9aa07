package testserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// NewSecret makes an API token the way `oci-tfstate token create` does: "otfs_" and 32 random
// bytes in unpadded base64url (43 characters).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "otfs_" + base64.RawURLEncoding.EncodeToString(b)
}

// TokenEntry is one token of a tokens file: its name and its secret (only the secret's hash is
// written to the file).
type TokenEntry struct {
	Name, Secret string
}

// WriteTokensFile writes the tokens file the service reads with --tokens-file into dir
// (`{"tokens":[{"name","sha256"}]}`, JSON being YAML) and returns its path. sha256 is the lowercase
// hex SHA-256 of the whole secret.
func WriteTokensFile(dir string, tokens ...TokenEntry) (string, error) {
	type entry struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	}
	file := struct {
		Tokens []entry `json:"tokens"`
	}{Tokens: []entry{}}
	for _, t := range tokens {
		sum := sha256.Sum256([]byte(t.Secret))
		file.Tokens = append(file.Tokens, entry{Name: t.Name, SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}
