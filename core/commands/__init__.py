"""CLI subcommands; each module registers its own with core.cli.command."""
