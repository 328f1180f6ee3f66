import { Button } from "react-aria-components";
import { LOCALES, type Locale, setLocale, useLocale } from "./i18n";

/** The switch between the UI's languages, each named in itself ("English", "Nederlands"), so
 *  that someone who cannot read the current one still finds theirs. `remember`: whether the
 *  choice outlives this run (staff) or not (a kiosk, where the next patient starts afresh). */
export function LanguageSwitch({ big = false, remember = true }: { big?: boolean; remember?: boolean }) {
  const current = useLocale();
  return (
    <div className="language-switch" role="group" aria-label="Language · Taal">
      {(Object.keys(LOCALES) as Locale[]).map((locale) => (
        <Button
          key={locale}
          lang={locale}
          className={`${big ? "" : "small "}secondary on-dark`}
          aria-pressed={locale === current}
          data-current={locale === current || undefined}
          onPress={() => setLocale(locale, { remember })}
        >
          {LOCALES[locale]}
        </Button>
      ))}
    </div>
  );
}
