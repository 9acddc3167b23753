package observability

// The subset of Grafana's dashboard JSON model (schemaVersion 39) that the
// dashboard uses. Field names and shapes are Grafana's; anything left out
// takes Grafana's default on import.

// SchemaVersion is the Grafana dashboard schema the JSON is written for.
const SchemaVersion = 39

// DatasourceVar is the dashboard's data source variable: every panel and
// query names its data source as ${datasource}, so an operator picks the
// Prometheus on import or from the dashboard's variable bar.
const DatasourceVar = "datasource"

type dashboard struct {
	Annotations   annotations `json:"annotations"`
	Description   string      `json:"description"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Panels        []panel     `json:"panels"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Tags          []string    `json:"tags"`
	Templating    templating  `json:"templating"`
	Time          timeRange   `json:"time"`
	Timepicker    struct{}    `json:"timepicker"`
	Timezone      string      `json:"timezone"`
	Title         string      `json:"title"`
	UID           string      `json:"uid"`
	Version       int         `json:"version"`
}

type annotations struct {
	List []annotation `json:"list"`
}

// annotation is Grafana's built-in "Annotations & Alerts" entry, which a
// dashboard saved by Grafana always carries.
type annotation struct {
	BuiltIn    int        `json:"builtIn"`
	Datasource datasource `json:"datasource"`
	Enable     bool       `json:"enable"`
	Hide       bool       `json:"hide"`
	IconColor  string     `json:"iconColor"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// promDatasource is the data source of every panel and query.
var promDatasource = datasource{Type: "prometheus", UID: "${" + DatasourceVar + "}"}

type panel struct {
	Collapsed   *bool        `json:"collapsed,omitempty"`
	Datasource  *datasource  `json:"datasource,omitempty"`
	Description string       `json:"description,omitempty"`
	FieldConfig *fieldConfig `json:"fieldConfig,omitempty"`
	GridPos     gridPos      `json:"gridPos"`
	ID          int          `json:"id"`
	Options     any          `json:"options,omitempty"`
	Panels      []panel      `json:"panels,omitempty"`
	Targets     []target     `json:"targets,omitempty"`
	Title       string       `json:"title"`
	Type        string       `json:"type"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type fieldConfig struct {
	Defaults  fieldDefaults `json:"defaults"`
	Overrides []struct{}    `json:"overrides"`
}

type fieldDefaults struct {
	Custom     map[string]any `json:"custom,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Thresholds *thresholds    `json:"thresholds,omitempty"`
	Unit       string         `json:"unit,omitempty"`
}

type thresholds struct {
	Mode  string      `json:"mode"`
	Steps []threshold `json:"steps"`
}

// threshold is one step; Value nil is the base step (from minus infinity).
type threshold struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

type target struct {
	Datasource   datasource `json:"datasource"`
	Expr         string     `json:"expr"`
	Instant      bool       `json:"instant,omitempty"`
	LegendFormat string     `json:"legendFormat"`
	Range        bool       `json:"range"`
	RefID        string     `json:"refId"`
}

type templating struct {
	List []variable `json:"list"`
}

type variable struct {
	AllValue   string      `json:"allValue,omitempty"`
	Current    struct{}    `json:"current"`
	Datasource *datasource `json:"datasource,omitempty"`
	Definition string      `json:"definition,omitempty"`
	Hide       int         `json:"hide"`
	IncludeAll bool        `json:"includeAll"`
	Label      string      `json:"label"`
	Multi      bool        `json:"multi"`
	Name       string      `json:"name"`
	Options    []struct{}  `json:"options"`
	Query      any         `json:"query"`
	Refresh    int         `json:"refresh"`
	Regex      string      `json:"regex"`
	Sort       int         `json:"sort,omitempty"`
	Type       string      `json:"type"`
}

type variableQuery struct {
	QryType int    `json:"qryType"`
	Query   string `json:"query"`
	RefID   string `json:"refId"`
}

type timeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Options of the two panel kinds, as Grafana writes them.

type timeseriesOptions struct {
	Legend  legendOptions  `json:"legend"`
	Tooltip tooltipOptions `json:"tooltip"`
}

type legendOptions struct {
	Calcs       []string `json:"calcs"`
	DisplayMode string   `json:"displayMode"`
	Placement   string   `json:"placement"`
	ShowLegend  bool     `json:"showLegend"`
}

type tooltipOptions struct {
	Mode string `json:"mode"`
	Sort string `json:"sort"`
}

type statOptions struct {
	ColorMode     string        `json:"colorMode"`
	GraphMode     string        `json:"graphMode"`
	JustifyMode   string        `json:"justifyMode"`
	Orientation   string        `json:"orientation"`
	ReduceOptions reduceOptions `json:"reduceOptions"`
	TextMode      string        `json:"textMode"`
}

type reduceOptions struct {
	Calcs  []string `json:"calcs"`
	Fields string   `json:"fields"`
	Values bool     `json:"values"`
}
