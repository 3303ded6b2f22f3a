"""Files: weights-only values written atomically, and run checkpoints (model, optimizers,
callbacks' state, records, RNG states), checked against the model they are loaded into."""
