"""IGVM files for the second SEV-SNP launch path (issue 13 §8): format, builder, measurement predictor."""
