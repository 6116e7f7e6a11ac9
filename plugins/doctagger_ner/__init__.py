"""First-party task type: named-entity recognition (character spans)."""
