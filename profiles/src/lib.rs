//! ServiceProfile and TrafficSplit support for wisp.
//!
//! Nothing lives here yet: the destination service answers the default
//! (empty) profile. The ServiceProfile/TrafficSplit types, their validation,
//! translation to the proxy API and the generators arrive with the profiles
//! issue; this crate is where they go.
