"""Pure domain layer: time model, errors, media value types, ports. Standard library only."""
