//! provision-axum
