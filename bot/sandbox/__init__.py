"""A local stand-in Slack workspace: try revbot in the browser without a Slack app."""
