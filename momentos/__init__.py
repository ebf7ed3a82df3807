"""momentos: relationship moments and experience signals for ServiceNow and Jira."""

__version__ = "0.1.0"
