"""Shared pieces for running teams from any interface."""

from __future__ import annotations


def team_model_client(service):
    """The model client the agents use: the same factory and settings as the answerer."""
    from evorag.agents.model_clients import create_model_client

    return create_model_client(service.settings, purpose="agents")
