//! Part 5, bad input at the API, at the quick scale (the same as the full
//! one: it is cheap).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_at_the_api_gets_typed_errors_in_bounded_time() {
    let rows = reliability::api::run(reliability::Scale::Quick).await;
    reliability::report::assert_held(&rows);
}
