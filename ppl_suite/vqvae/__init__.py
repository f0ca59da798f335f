"""The VQ-VAE study: the digits VQ-VAE (``models/vqvae_digits``) trained three ways with each backend,
and every term of log p(x) = ELBO + KL(q || p(z | x)) computed exactly, by summing over the K^L codes."""
