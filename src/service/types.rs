pub use crate::model::service::*;
