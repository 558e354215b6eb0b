// `settle` and `release` run on the built service: without a receiver they
// are not its steps.
use provision::{Error, Exit, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }

    async fn settle(exit: Exit) -> Result<(), Error> {
        let _ = exit;
        Ok(())
    }

    async fn release(exit: Exit) -> Result<(), Error> {
        let _ = exit;
        Ok(())
    }
}

fn main() {}
