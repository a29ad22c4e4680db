//! Part 3 at the quick scale: a sender that outruns the server, on Prosody
//! and ejabberd; every payload received or reported.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_loses_nothing_without_a_word() {
    let rows = reliability::flood::run(reliability::Scale::Quick).await;
    reliability::report::assert_held(&rows);
}
