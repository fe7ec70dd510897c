"""Security primitives: passwords, tokens, JWT/OIDC, permissions, secret encryption, URL guard."""
