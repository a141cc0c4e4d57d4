pub mod catalog;
pub mod money;
