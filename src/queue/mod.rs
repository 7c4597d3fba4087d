//! Durable queues in the database, and the workers that drain them.

pub mod inbox;
pub mod outbox;
