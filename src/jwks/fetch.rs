//! Fetching JWKS over HTTP(S) and refreshing them in the background.
