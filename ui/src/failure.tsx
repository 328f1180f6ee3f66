// What the window shows if a screen fails to render: the error, and a way back, instead of a
// blank window.
import { Component, type ErrorInfo, type ReactNode } from "react";
import { t } from "./i18n";

export class ScreenFailure extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  componentDidCatch(error: Error, info: ErrorInfo) {
    console.error("a screen failed", error, info.componentStack);
  }
  render() {
    if (!this.state.error) return this.props.children;
    return (
      <main>
        <section className="panel" role="alert">
          <h2>{t("failure.heading")}</h2>
          <p className="error" id="screen-failure">{String(this.state.error.message ?? this.state.error)}</p>
          <button type="button" onClick={() => this.setState({ error: null })}>{t("failure.retry")}</button>
        </section>
      </main>
    );
  }
}
