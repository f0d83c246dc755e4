"""The agent team (AutoGen AgentChat) and the model-client factory: see issue 4."""
