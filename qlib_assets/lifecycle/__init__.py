"""The model lifecycle decides what serves: gates, champion and challenger, shadow evaluation,
promotion policies, approvals, fallback, rollback and the simulation of the daily loop."""
