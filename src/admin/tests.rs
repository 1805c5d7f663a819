//! Unit tests of the admin API.
