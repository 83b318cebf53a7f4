"""Statistics, figures and tables regenerated from run directories alone."""
