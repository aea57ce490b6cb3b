//! The object types: ServiceProfile, TrafficSplit and their building blocks.

mod duration;
mod quantity;
mod service_profile;
mod traffic_split;

pub use duration::{parse_go_duration, to_proto_duration, DurationError};
pub use quantity::{Quantity, QuantityError};
pub use service_profile::*;
pub use traffic_split::*;
