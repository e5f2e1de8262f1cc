//! Gradient check placeholder
