//! The desktop app's entry point (a skeleton until the desktop-app issue lands).

fn main() {
    println!("The CareBridge desktop app is not built yet; run `make run` for the node demo.");
}
