// `settle` cannot consume the service: it is released after.
use provision::{Error, Exit, provide};

struct Tx;

#[provide(Request)]
impl Tx {
    async fn build() -> Result<Self, Error> {
        Ok(Tx)
    }

    async fn settle(self, exit: Exit) -> Result<(), Error> {
        let _ = exit;
        Ok(())
    }
}

fn main() {}
