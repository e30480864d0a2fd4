/// Mailbox providers whose domain says nothing about the employer, so `stop_company_on_reply`
/// never treats two of their users as colleagues. A reply from one gmail.com contact must not
/// end the sequence for every other gmail.com contact.
///
/// `exact` entries match the whole domain; `anyCountry` entries match the provider's name with
/// any suffix (`yahoo` matches yahoo.com, yahoo.co.uk, yahoo.fr). Kept short and obvious on
/// purpose: a missing provider costs one unintended stop per reply; a corporate domain
/// mistaken for free mail would silently disable the feature for that company.
public enum FreeMailDomains {
    static let exact: Set<String> = [
        "gmail.com", "googlemail.com", "outlook.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com",
        "aol.com", "web.de", "proton.me", "pm.me", "protonmail.com", "protonmail.ch", "mail.ru", "inbox.ru", "bk.ru",
        "list.ru", "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sohu.com", "naver.com", "daum.net",
        "ymail.com", "rocketmail.com", "zoho.com", "zohomail.com", "fastmail.com", "fastmail.fm", "hey.com",
        "tutanota.com", "tuta.io", "mail.com", "email.com", "gmx.net", "t-online.de", "freenet.de", "posteo.de",
        "mailbox.org", "orange.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it", "seznam.cz",
        "wp.pl", "o2.pl", "interia.pl", "rambler.ru", "comcast.net", "verizon.net", "att.net", "sbcglobal.net",
        "btinternet.com", "sky.com", "bigpond.com", "shaw.ca", "rediffmail.com", "uol.com.br", "bol.com.br",
        "terra.com.br",
    ]
    static let anyCountry: Set<String> = ["yahoo", "hotmail", "gmx", "yandex", "outlook", "live", "aim"]

    /// Whether `domain` (the part after `@`, any case) belongs to a free-mail provider.
    public static func contains(_ domain: String) -> Bool {
        let domain = domain.lowercased()
        if exact.contains(domain) { return true }
        guard let dot = domain.firstIndex(of: ".") else { return false }
        return anyCountry.contains(String(domain[..<dot]))
    }

    /// The company domain of an address for `stop_company_on_reply`: its domain, lower-cased, or
    /// nil for free mail and for text that is not an address.
    public static func companyDomain(ofAddress address: String) -> String? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        let domain = address[address.index(after: at)...].lowercased()
        guard domain.contains("."), !contains(domain) else { return nil }
        return domain
    }
}
