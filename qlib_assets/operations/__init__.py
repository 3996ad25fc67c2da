"""Operations: deployments, resource accounting, cost, budget, waste, alerts, task statuses."""
