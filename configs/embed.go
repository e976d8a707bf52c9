package configs

import _ "embed"

//go:embed default.yaml
var defaultYAML []byte

// Default returns the configuration `mecha run` uses without -c.
func Default() *Config {
	cfg, err := Parse("(built-in defaults)", defaultYAML)
	if err != nil {
		panic("configs: built-in defaults do not parse: " + err.Error())
	}
	return cfg
}
