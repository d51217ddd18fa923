"""Rollouts as pure plans: ``steps`` compiles a strategy into typed steps;
``planner.decide`` maps (environment, persisted state, observations) to the next
state and idempotent actions. The controller's executor applies them.
"""
