"""Training FEDN for expression spotting with Lightning: features, data, module, LOSO."""
