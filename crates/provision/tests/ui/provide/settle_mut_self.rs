// `settle` wants the service alone, but a streaming body may still hold it.
use provision::{Error, Exit, provide};

struct Tx {
    committed: bool,
}

#[provide(Request)]
impl Tx {
    async fn build() -> Result<Self, Error> {
        Ok(Tx { committed: false })
    }

    async fn settle(&mut self, exit: Exit) -> Result<(), Error> {
        self.committed = exit.is_success();
        Ok(())
    }
}

fn main() {}
