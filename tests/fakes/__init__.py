"""In-process fakes of Slack used by the test suite."""
