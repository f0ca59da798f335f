"""Hand-rolled estimators of ELBO, KL(q || p(z | x)) and log p(x), each returning an Estimate."""
