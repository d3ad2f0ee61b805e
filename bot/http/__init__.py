"""revbot's HTTP endpoints: Slack, intake and health."""
