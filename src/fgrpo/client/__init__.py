"""ClientApp and the per-round TRL GRPO driver."""
