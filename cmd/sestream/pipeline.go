package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/sestream/sestream/config"
)

func runPipeline(cmd *cobra.Command, cfg *config.Config, streams []string) error {
	return errors.New("run: not wired yet")
}
