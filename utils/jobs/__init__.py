"""The libraries behind the five commands, side by side: train, evaluate, randomize, visualize, sweep."""
