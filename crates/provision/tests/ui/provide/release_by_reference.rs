// `release` consumes the service; a reference would leave it behind.
use provision::{Error, Exit, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }

    async fn release(&self, _exit: Exit) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
