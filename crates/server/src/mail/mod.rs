//! Email on the server side: rendering the templates of `usher_core::mail`
//! ([`templates::AskamaComposer`]), delivering messages ([`transport`]: SMTP or `.eml` files),
//! and the outbox [`worker`] that drains the store's outbox through a transport with retries.
//!
//! The services never send mail themselves: they compose a message and commit it to the
//! outbox in the transaction of the change that causes it; the worker delivers it later, so a
//! mail-server outage delays mail but loses none.

pub mod templates;
pub mod transport;
pub mod worker;

pub use templates::AskamaComposer;
pub use transport::{
    default_data_dir, transport_from_config, FileTransport, SmtpSettings, SmtpTransport, Transport,
    TransportError,
};
pub use worker::{deliver_batch, spawn_worker, BatchReport, WorkerHandle, WorkerOptions};
