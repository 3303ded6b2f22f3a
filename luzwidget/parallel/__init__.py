"""Several processes, one run: records reduced across ranks, commands applied in step."""
