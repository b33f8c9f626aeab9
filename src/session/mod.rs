//! Sessions: the c2s task per connection and the registry of bound sessions.

pub mod c2s;
pub mod queue;
pub mod registry;
pub mod resume;

pub use registry::{
    Batch, BindOutcome, DeliveryError, Flag, Registry, SessionHandle, SessionInfo, SessionMsg,
    bare_str,
};
