// Package config loads and validates sestream's configuration from defaults, a YAML file, SESTREAM_ environment variables and flags.
package config
