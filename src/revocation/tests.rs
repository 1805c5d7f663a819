//! Unit tests of the revocation list.
